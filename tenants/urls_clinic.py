from django.urls import include, path

from tenants.views import home

app_name = "clinic"
urlpatterns = [
    path("", home.dashboard, name="dashboard"),
    path("audit/", include("tenants.views.audit")),  # clinic:audit, clinic:audit_export
]
