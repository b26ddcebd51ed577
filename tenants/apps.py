from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Clinics and people"

    def ready(self):
        # Connects the receivers that put sign-ins into the clinics' audit logs, and the one
        # that starts a new session's idle clock at its login.
        from tenants import idle_logoff, signin_audit  # noqa: F401
