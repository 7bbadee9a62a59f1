"""The API gateway: the app that turns requests on APIs into blocking runs, its bearer authentication, and its own WSGI process."""
