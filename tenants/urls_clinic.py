from django.urls import include, path

from tenants.views import clinic_settings, members, tokens

# The clinic's pages in the "clinic" namespace; cloudpacs/urls.py adds the landing page
# (archive.views.dashboard), which shows the archive, to the same namespace.
app_name = "clinic"
urlpatterns = [
    path("members/", members.members, name="members"),
    path("members/<int:membership_id>/role/", members.member_role, name="member_role"),
    path("members/<int:membership_id>/remove/", members.member_delete, name="member_remove"),
    path("members/<int:membership_id>/password-reset/", members.member_password_reset,
         name="member_password_reset"),
    path("members/invitations/<int:invitation_id>/revoke/", members.invitation_delete,
         name="invitation_revoke"),
    path("members/invitations/<int:invitation_id>/renew/", members.invitation_renew,
         name="invitation_renew"),
    path("settings/", clinic_settings.clinic_settings, name="settings"),
    path("settings/tokens/", tokens.tokens, name="tokens"),
    path("settings/tokens/<int:token_id>/revoke/", tokens.token_delete, name="token_revoke"),
    path("audit/", include("tenants.views.audit")),  # clinic:audit, clinic:audit_export
]
