// The voiceroom mini-program example. Set baseUrl to your server; WeChat only lets a
// mini-program reach HTTPS/WSS domains listed in its console (request and socket
// domains), and the server needs VOICEROOM_WECHAT_APP_ID / _APP_SECRET for wx.login.
App({
  globalData: {
    baseUrl: 'https://voice.example.com',
  },
});
