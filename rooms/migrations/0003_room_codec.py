from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("rooms", "0002_seat_requests"),
    ]

    operations = [
        migrations.AddField(
            model_name="room",
            name="codec",
            field=models.CharField(
                choices=[("opus", "Opus"), ("pcm16", "Pcm16")], default="opus", max_length=8
            ),
        ),
    ]
