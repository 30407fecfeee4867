"""The REST face of rooms: DRF views, serializers, throttles and urls."""
