from setuptools import find_packages, setup

setup(
    name="dispatch",
    version="0.2.0",
    description="A serverless framework: functions, runs, events and an API gateway on Flask, Dramatiq and etcd",
    python_requires=">=3.11",
    packages=find_packages(include=["engine*", "api*", "tasks*", "blueprints*", "cli*"]),
    package_data={"engine": ["runtimes/*/*", "workflows/schema/*"],
                  "blueprints": ["ui/templates/ui/*.html", "ui/static/*"]},
    install_requires=[
        "Flask>=3.1",
        "flask-smorest>=0.47",
        "marshmallow>=4.0",
        "dramatiq[redis]>=2.2",
        "redis>=5.0",
        "etcd-sdk-python>=0.0.7",
        "protobuf>=5.27",
        "grpcio>=1.60",
        "jsonschema>=4.20",
        "cryptography>=42",
        "click>=8.1",
        "PyYAML>=6.0",
        "tabulate>=0.9",
        "requests>=2.31",
        "cheroot>=11.1,<12",  # api.http_server extends its put_conn
        "gunicorn>=22.0",
        # gunicorn's C request parser (its "fast" extra asks for a release not on the
        # index these machines use; this one is what was measured: README, cut 17)
        "gunicorn_h1c>=0.6.10",
        "honcho>=2.0",
        "docker>=7",
        "cloudevents>=2.2",
        "croniter>=7.0",
        "PyJWT[crypto]>=2.15",
        "casbin>=1.43",
        "flask-oidc>=2.4",
        "jq>=1.13",
        "prometheus-client>=0.26",
        "orjson>=3.13",  # engine.fastjson
    ],
    extras_require={"bench": ["py-spy>=0.4.3"], "test": ["pytest>=8.0", "pytest-timeout>=2.3", "schemathesis>=4.32,<5",
                             "kubernetes-validate>=1.37", "playwright>=1.65"]},
    entry_points={"console_scripts": ["dispatch=cli.main:main"]},
)
