"""The storage, retention, gateway and outbox models move to apps of their own
(archive/<app>/). State only: each keeps its table (db_table), so nothing is rebuilt and no
row moves; the new apps' 0001 migrations add them to their own state."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('archive', '0007_identifiers_stored_whole'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
            migrations.RemoveField(
                model_name='deletionrequest',
                name='decided_by',
            ),
            migrations.RemoveField(
                model_name='deletionrequest',
                name='requested_by',
            ),
            migrations.RemoveField(
                model_name='deletionrequest',
                name='study',
            ),
            migrations.RemoveField(
                model_name='deletionrequest',
                name='tenant',
            ),
            migrations.RemoveField(
                model_name='studytombstone',
                name='request',
            ),
            migrations.RemoveField(
                model_name='dicompeer',
                name='tenant',
            ),
            migrations.RemoveField(
                model_name='fixityfinding',
                name='instance',
            ),
            migrations.RemoveField(
                model_name='fixityfinding',
                name='run',
            ),
            migrations.RemoveField(
                model_name='fixityfinding',
                name='tenant',
            ),
            migrations.RemoveField(
                model_name='instancecopy',
                name='instance',
            ),
            migrations.RemoveField(
                model_name='instancecopy',
                name='tenant',
            ),
            migrations.RemoveField(
                model_name='outbox',
                name='instance',
            ),
            migrations.RemoveField(
                model_name='outbox',
                name='tenant',
            ),
            migrations.RemoveField(
                model_name='retentionpolicy',
                name='tenant',
            ),
            migrations.RemoveField(
                model_name='studyretention',
                name='study',
            ),
            migrations.RemoveField(
                model_name='studyretention',
                name='tenant',
            ),
            migrations.RemoveField(
                model_name='studytombstone',
                name='approved_by',
            ),
            migrations.RemoveField(
                model_name='studytombstone',
                name='requested_by',
            ),
            migrations.RemoveField(
                model_name='studytombstone',
                name='tenant',
            ),
            migrations.DeleteModel(
                name='DataKey',
            ),
            migrations.DeleteModel(
                name='DeletionRequest',
            ),
            migrations.DeleteModel(
                name='DicomPeer',
            ),
            migrations.DeleteModel(
                name='FixityRun',
            ),
            migrations.DeleteModel(
                name='FixityFinding',
            ),
            migrations.DeleteModel(
                name='InstanceCopy',
            ),
            migrations.DeleteModel(
                name='Outbox',
            ),
            migrations.DeleteModel(
                name='RetentionPolicy',
            ),
            migrations.DeleteModel(
                name='StudyRetention',
            ),
            migrations.DeleteModel(
                name='StudyTombstone',
            ),
            ],
        ),
    ]
