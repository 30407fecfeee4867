from rest_framework.authentication import TokenAuthentication


class BearerTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>` (DRF's convention), the only way REST clients sign in.

    A header that names another scheme is refused with 401 rather than ignored, so a
    client that sends a wrong header learns it at once.
    """

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header and not header.split(" ", 1)[0].lower() == self.keyword.lower():
            from rest_framework import exceptions

            raise exceptions.AuthenticationFailed(
                "Invalid Authorization header: use 'Token <token>'."
            )
        return super().authenticate(request)
