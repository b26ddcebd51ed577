"""The clinic REST API under /t/<slug>/api/ (Django REST framework, OpenAPI by drf-spectacular)."""
