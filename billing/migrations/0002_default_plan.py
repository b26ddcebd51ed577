"""A default plan with a price, so a new installation bills from its first study; operators
change it (as a new price version) in the admin."""

from datetime import datetime
from datetime import timezone as dt_timezone

from django.db import migrations

DEFAULT_PLAN = "Standard"


def create(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    PriceVersion = apps.get_model("billing", "PriceVersion")
    if Plan.objects.filter(is_default=True).exists():
        return
    plan = Plan.objects.create(name=DEFAULT_PLAN, is_default=True)
    PriceVersion.objects.create(plan=plan, effective_from=datetime(2026, 1, 1, tzinfo=dt_timezone.utc),
                                currency="usd", study_amount=500, free_studies_per_month=0)


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
