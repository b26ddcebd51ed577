from django.apps import AppConfig


class CorrectionsConfig(AppConfig):
    name = "archive.corrections"
    label = "corrections"
    verbose_name = "Corrections"

    def ready(self) -> None:
        from archive.corrections import work  # noqa: F401 - registers the "correct" outbox work
