"""The only package that touches sockets: DNS listeners, HTTP side servers, lifecycle."""
