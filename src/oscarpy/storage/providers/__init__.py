"""How staging reaches storage: the embedded store in process, external S3 endpoints through
boto3. The supervisor sees only the `StorageProvider` protocol of `base`."""
