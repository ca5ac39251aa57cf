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
