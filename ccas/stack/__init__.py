"""The local stack: real servers on 127.0.0.1, data under the clone's .stack/, downloads and builds in the shared cache."""
