from django.urls import path

from tenants.views import account, auth, home, invitations, password_reset, session_clock, twofactor

urlpatterns = [
    path("", home.home, name="home"),
    path("login/", auth.login_view, name="login"),
    path("logout/", auth.logout_view, name="logout"),
    path("password-reset/", password_reset.reset_request, name="password_reset"),
    path("password-reset/sent/", password_reset.reset_requested, name="password_reset_done"),
    path("password-reset/<uidb64>/<token>/", password_reset.reset_confirm, name="password_reset_confirm"),
    path("password-reset/done/", password_reset.reset_complete, name="password_reset_complete"),
    path("account/", account.account, name="account"),
    path("account/session/", session_clock.session_clock, name="session_clock"),
    path("account/2fa/setup/", twofactor.setup, name="2fa_setup"),
    path("account/2fa/verify/", twofactor.verify, name="2fa_verify"),
    path("invite/<str:token>/", invitations.accept, name="invitation_accept"),
]
