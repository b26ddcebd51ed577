from django.urls import path

from tenants.views import account, auth, home, invitations, twofactor

urlpatterns = [
    path("", home.home, name="home"),
    path("login/", auth.login_view, name="login"),
    path("logout/", auth.logout_view, name="logout"),
    path("account/", account.account, name="account"),
    path("account/2fa/setup/", twofactor.setup, name="2fa_setup"),
    path("account/2fa/verify/", twofactor.verify, name="2fa_verify"),
    path("invite/<str:token>/", invitations.accept, name="invitation_accept"),
]
