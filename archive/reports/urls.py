"""Report URLs, included by archive/urls.py (namespace `archive`)."""

from django.urls import path

from archive.reports import views

urlpatterns = [
    path("studies/<int:pk>/report/", views.report_action, name="report_action"),
    path("studies/<int:pk>/report/pdf/", views.report_pdf_attach, name="report_pdf_attach"),
    path("studies/<int:pk>/report/assign/", views.report_assign, name="report_assign"),
    path("studies/<int:pk>/report/<int:number>.pdf", views.report_pdf, name="report_pdf"),
]
