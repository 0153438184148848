"""Deployment settings contract of pydeploy.django_stack (role python_app).

Shipped by the role into every release, next to the project's code (the directory the app
server and the manage wrapper run from), never part of the project itself:

- ``pydeploy_django.settings``: the settings module the app runs with. It imports the
  project's own settings module and overrides the deployment values (see ``contract``).
- ``pydeploy_django.middleware``: the real client address from nginx, the health check.
- ``pydeploy_django.preflight``: the checks the role runs on a release before it goes live.

The values come from a JSON file written by the role (``PYDEPLOY_DJANGO_CONFIG``).
"""
