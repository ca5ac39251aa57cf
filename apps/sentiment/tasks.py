from __future__ import annotations

from celery import shared_task


@shared_task(name="sentiment.feeds_poll", ignore_result=True)
def feeds_poll_task() -> int:
    """Run by Celery beat every SENTIMENT_FEED_POLL_SECONDS: poll the enabled RSS/Atom feeds once."""
    from apps.sentiment.models import Feed
    from pipelines.news_feeds import feeds_poll
    from services.sentiment.bus import topics_default, topics_ensure

    if not Feed.objects.filter(enabled=True).exists():  # no feeds: do not even connect to Kafka
        return 0
    topics = topics_default()
    topics_ensure(topics=topics)
    return sum(result.sent for result in feeds_poll(topics=topics, once=True))


@shared_task(name="sentiment.delivery_send", bind=True, ignore_result=True, max_retries=None)
def delivery_send(self, delivery_id: int) -> None:  # noqa: ANN001
    """Send one alert delivery (an outbox row); a failure that may pass comes back after its backoff.

    services.sentiment.channels.delivery_attempt bounds the attempts (1 + SENTIMENT_WEBHOOK_RETRIES), so the
    task itself retries without a count of its own.
    """
    from services.sentiment.channels import delivery_attempt

    retry_in = delivery_attempt(delivery_id=delivery_id)
    if retry_in is not None:
        raise self.retry(countdown=retry_in)


@shared_task(name="sentiment.deliveries_requeue", ignore_result=True)
def deliveries_requeue_task() -> int:
    """Run by Celery beat every minute: send again the pending deliveries whose task was lost (a dead process)."""
    from django.conf import settings

    from services.sentiment.channels import deliveries_requeue

    return deliveries_requeue(older_than_s=settings.SENTIMENT_DELIVERY_REQUEUE_S)
