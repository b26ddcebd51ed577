from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "archive.reports"
    label = "reports"
    verbose_name = "Reports"
