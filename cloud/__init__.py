"""The platform's AWS side: Kubernetes Secrets from SSM Parameter Store, and the weekly audit's
spending and billing-alarm checks. Nothing here is part of the model server or its image."""
