"""The onboard web application: pages, the REST API under /api/v1, and the browser's virtual handset."""
