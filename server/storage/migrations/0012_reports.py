"""Reports: shoppers report a conversation or an answer to the organisation's moderators,
for a reason; each organisation's threshold of reporters (3 for every existing one) sends
a published item back to the queue.

A report with a reporter_id is recorded once per reporter and item (the unique index; NULLs
are distinct on both databases, so each report without one is recorded:
server/storage/reports.py counts those as one reporter)."""

from peewee import *


def up(migrator, db):
    threshold = IntegerField(default=3, constraints=[SQL("DEFAULT 3")])
    migrator.migrate(
        migrator.add_column("organisation", "report_threshold", threshold, allow_not_null=True),
    )

    class ReportRow(Model):
        target = CharField(max_length=12)
        target_id = IntegerField()
        reason = CharField(max_length=24)
        reporter_id = CharField(max_length=100, null=True)
        reported_by = CharField(max_length=64)
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "report"
            indexes = ((("target", "target_id", "reporter_id"), True),)

    db.create_tables([ReportRow])


def down(migrator, db):
    db.execute_sql("DROP TABLE report")
    migrator.migrate(migrator.drop_column("organisation", "report_threshold"))
