"""OGC API Processes: the site-compliance process and its jobs."""
