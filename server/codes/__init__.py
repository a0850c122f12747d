"""Code lists of the domain (land survey and planning classes) and the real estate unit code."""
