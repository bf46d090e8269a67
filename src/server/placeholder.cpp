// Placeholder so the server layer library has a source; replaced by the HTTP server.
