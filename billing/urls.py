"""A clinic's billing pages, under /t/<slug>/billing/."""

from django.urls import path

from billing import views

app_name = "billing"
urlpatterns = [
    path("", views.billing_page, name="page"),
    path("details/", views.billing_details, name="details"),
    path("card/", views.card_page, name="card"),
    path("card/saved/", views.card_saved_view, name="card_saved"),
    path("charges.csv", views.charges_csv, name="charges_csv"),
]
