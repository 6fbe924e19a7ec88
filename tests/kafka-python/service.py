"""Stands in for kafka-python's test/service.py, which its source
distribution leaves out: the integration fixtures import it. Against an
existing broker (KAFKA_URI, as tests/kafka-python/run runs them) only
ExternalService is used: the broker runs already, there is nothing to start
or stop. SpawnedService (a Kafka the fixtures would start themselves) is not
available here."""


class ExternalService(object):
    def __init__(self, host, port):
        self.host = host
        self.port = port

    def start(self):
        pass

    def stop(self):
        pass

    def dump_logs(self):
        pass

    def wait_for(self, pattern, timeout=30):
        return True


class SpawnedService(object):
    def __init__(self, *args, **kwargs):
        raise RuntimeError(
            "tests/kafka-python/run runs against an existing broker (KAFKA_URI); "
            "starting a Kafka of its own is not supported here")
