"""The outbox serves every kind of follow-up work, not only archiving: the foreign key to
an instance becomes `subject_id`, the id of what a row's work is about in its kind's own
terms (for "archive" rows: the instance, so existing rows keep their meaning). The
column is renamed, never emptied; its foreign key constraint goes (a deleted instance's
row is simply done, see archive.storage.handlers)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('outbox', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='outbox',
            name='instance',
            field=models.BigIntegerField(blank=True, null=True, db_column='instance_id'),
        ),
        migrations.RenameField(
            model_name='outbox',
            old_name='instance',
            new_name='subject_id',
        ),
        migrations.AlterField(
            model_name='outbox',
            name='subject_id',
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='outbox',
            name='kind',
            field=models.CharField(max_length=32),
        ),
        migrations.AddIndex(
            model_name='outbox',
            index=models.Index(fields=['kind', 'subject_id'], name='outbox_kind_subject_idx'),
        ),
    ]
