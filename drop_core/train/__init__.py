"""Training backend: device-resident data, batched augmentation, per-class evaluation, records for scorers."""
from drop_core.train.trainer import Stopped, TrainConfig, TrainResult, predict, train

__all__ = ["Stopped", "TrainConfig", "TrainResult", "predict", "train"]
