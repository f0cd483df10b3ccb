"""What users do with runs: run and record one, check out or apply one, reproduce it, push
and pull runs. Built on store/ and dvc/."""
