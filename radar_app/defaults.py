"""Constants shared by the client, the batch runner and the configuration."""

# The project's default page size: well inside the API's (probable) 1000-row cap,
# and small enough that a lost page costs little.
DEFAULT_BATCH_SIZE = 400
MAX_BATCH_SIZE = 1000

DEFAULT_API_URL = "https://api.propertyradar.com"
DEFAULT_QUEUE = "radar"
