"""ScanReport -> JSON (with integrity), HTML, CSV; diff of two reports."""
