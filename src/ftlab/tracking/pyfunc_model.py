"""The MLflow pyfunc model of an ftlab run, logged as "model from code": MLflow stores this file,
not a pickle, and rebuilds the model from the `ftlab_model` artifact folder (models/model_folder.py).

`predict` takes strings (text models) or image arrays (image models); a DataFrame or list is what
MLflow hands over for text, an array for images (see `Predictor`)."""

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class FtlabPyfuncModel(PythonModel):
    def load_context(self, context):
        from ftlab.models.model_folder import Predictor

        self.predictor = Predictor(context.artifacts["ftlab_model"])

    def predict(self, context, model_input: pd.DataFrame, params=None):
        return self.predictor.predict(model_input)


mlflow.models.set_model(FtlabPyfuncModel())
