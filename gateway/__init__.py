"""FIX gateway: sessions, framing and the codec, settings, the acceptor and the appliance."""
