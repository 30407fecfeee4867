from rest_framework import exceptions, parsers

from voiceroom.text import INVALID_TEXT_DETAIL, all_utf8_text


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, except that:

    - a body nested too deeply for Python's json module is a `malformed_request` (400)
      instead of a RecursionError (500);
    - a body holding text that is not valid Unicode (a lone surrogate escape such as
      `"\\ud800"`, which json accepts) is refused with 400 `invalid`, whatever field it
      is in, before any view stores or broadcasts it (voiceroom/text.py says why).
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
        if not all_utf8_text(data):
            raise exceptions.ValidationError([INVALID_TEXT_DETAIL])
        return data
