// The voiceroom mini-program example. baseUrl is the node it talks to:
// - in WeChat DevTools against `make run` on the same machine: http://127.0.0.1:8000,
//   with "do not verify domains" on (project.private.config.json's urlCheck: false);
// - on a phone, or for release: an https:// address whose host is in the mini-program's
//   request and socket domains (WeChat allows only HTTPS and WSS there; see
//   docker/nginx-tls.conf for a TLS front of the nodes).
// The node signs users in with wx.login when VOICEROOM_WECHAT_APP_ID / _APP_SECRET are
// set; a node with DJANGO_DEBUG=1 and no WeChat app offers a development sign-in instead.
App({
  globalData: {
    baseUrl: 'http://127.0.0.1:8000',
  },
});
