"""The on-site edge gateway: runs at the clinic, takes C-STORE from its modalities into a
durable local spool, and uploads to the clinic's cloud archive by STOW-RS. It has no models
and never opens the database: its state is its spool folder."""

from django.apps import AppConfig


class EdgeConfig(AppConfig):
    name = "edge"
    verbose_name = "On-site edge gateway"
