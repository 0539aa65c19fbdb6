"""Local KooDrive-compatible server (see koodrive_fast.server._app)."""
