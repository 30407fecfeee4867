"""The socket face of rooms: consumer, client frames, handshake auth and routing."""
