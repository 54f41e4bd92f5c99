"""What the tests and the bench share: the service run as a process of its own, the test
databases, organisations and keys, creating and reading back."""
