"""Network resource types: http, download, http_listener."""
