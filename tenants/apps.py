from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Clinics and people"

    def ready(self):
        # Connects the receivers that put sign-ins into the clinics' audit logs.
        from tenants import signin_audit  # noqa: F401
