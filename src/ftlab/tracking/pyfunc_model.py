"""The MLflow pyfunc model of an ftlab run, logged as "model from code": MLflow stores this file,
not a pickle, and rebuilds the model from the `ftlab_model` artifact folder (models/package.py)."""

import mlflow
from mlflow.pyfunc import PythonModel


class FtlabPyfuncModel(PythonModel):
    def load_context(self, context):
        from ftlab.models.package import Predictor

        self.predictor = Predictor(context.artifacts["ftlab_model"])

    def predict(self, context, model_input, params=None):
        return self.predictor.predict(model_input)


mlflow.models.set_model(FtlabPyfuncModel())
