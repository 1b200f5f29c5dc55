"""'What is it': per-host, read-only, bounded probes (HTTP, TLS, RTSP, ONVIF, banners)."""
