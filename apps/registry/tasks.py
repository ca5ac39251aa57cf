"""Celery tasks of the registry: batched inference (`inference` queue) and training (`training` queue)."""
from __future__ import annotations

from celery import shared_task

from services.registry.serving import texts_classify, texts_embed


@shared_task(name="inference.classify")
def classify(task: str, texts: list[str]) -> dict:
    """Classify `texts` with the task's champion; concurrent calls in one worker share forward passes."""
    out = texts_classify(task=task, texts=texts)
    return {"labels": out.labels, "probs": out.probs.tolist(), "label_names": out.label_names, "version": out.version}


@shared_task(name="inference.embed")
def embed(task: str | None, texts: list[str]) -> list[list[float]]:
    return texts_embed(task=task, texts=texts).tolist()


@shared_task(name="training.train_adapter")
def train_adapter(task: str, data: str, text_col: str = "text", label_col: str = "label", base: str | None = None,
                  epochs: int | None = None, created_by: str = "pipeline:celery") -> dict:
    from pipelines.training import TrainRequest, adapter_train

    return adapter_train(TrainRequest(task=task, data=data, text_col=text_col, label_col=label_col, base=base,
                                      epochs=epochs, created_by=created_by), progress=False)


@shared_task(name="training.retrain")
def retrain(task: str, force: bool = False) -> dict:
    """The periodic re-fine-tuning job (beat: the `retrain <task>` periodic tasks); a busy task is skipped, not queued."""
    from pipelines.retrain import retrain_run
    from services.registry.retrain import RetrainBusy, retrain_busy_summary, retrain_summary

    try:
        return retrain_summary(retrain_run(task=task, force=force))
    except RetrainBusy as exc:
        return retrain_busy_summary(task=task, reason=exc.message)
