from django.urls import path

from tenants.views import home

app_name = "clinic"
urlpatterns = [
    path("", home.dashboard, name="dashboard"),
]
