"""The small MLflow model under a run's `model/` artifacts, logged as "model from code": it loads
the run's real logged model (named after the run, found by its `models:/m-...` URI) from the same
tracking server, so `runs:/ID/model` works in `mlflow.pyfunc.load_model` and `mlflow models serve`."""

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class RunModelPointer(PythonModel):
    def load_context(self, context):
        self.model = mlflow.pyfunc.load_model(context.model_config["model_uri"])

    def predict(self, context, model_input: pd.DataFrame, params=None):
        return self.model.predict(model_input)


mlflow.models.set_model(RunModelPointer())
