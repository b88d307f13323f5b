"""The experiment file's JSON Schema: ``python -m harness.config.experiment``, the same as
``harness schema``."""

import json

from harness.config.experiment.schema import json_schema

print(json.dumps(json_schema(), indent=1))
