"""The two GraphQL documents this package sends itself, for what ``DagsterGraphQLClient`` has no call.

Everything else (finding the job's code location, launching, a run's status, cancelling) goes through
the client's own calls. Both queries read only; field names as in dagster-graphql 1.13's schema
(``dagster_graphql.schema.create_schema()``).
"""

# The checks a launch makes before submitting, in one round trip, on the job ($selector) and on the
# run it would launch ($selection: the job, or the subset of its assets the run executes):
# - the job's partition keys, to refuse a day the job does not have;
# - each asset's backfill policy: a range runs as ONE run only where every asset it targets has
#   BackfillPolicy.single_run() (as `dagster asset materialize --partition-range` requires,
#   dagster/_cli/asset.py);
# - isPipelineConfigValid, the query the launchpad validates its editor's config with
#   (dagster-io/dagster js_modules/dagster-ui/packages/ui-core/src/launchpad/LaunchpadSession.tsx,
#   PREVIEW_CONFIG_QUERY): the same config schema, on the deployment's own code.
LAUNCH_CHECK_QUERY = """
query KarteLaunchCheck(
  $selector: PipelineSelector!
  $selection: PipelineSelector!
  $runConfigData: RunConfigData
) {
  pipelineOrError(params: $selector) {
    __typename
    ... on Pipeline { partitionKeysOrError { partitionKeys } }
    ... on Error { message }
  }
  assetNodes(pipeline: $selector) {
    assetKey { path }
    backfillPolicy { policyType }
  }
  isPipelineConfigValid(pipeline: $selection, mode: "default", runConfigData: $runConfigData) {
    __typename
    ... on RunConfigValidationInvalid {
      errors {
        message
        stack { entries { ... on EvaluationStackPathEntry { fieldName } } }
        ... on FieldNotDefinedConfigError { fieldName }
        ... on FieldsNotDefinedConfigError { fieldNames }
      }
    }
    ... on Error { message }
  }
}
"""

# What a run set out to do and what each of its assets did: the assets of its execution plan (or its
# asset selection, for a run cancelled before it was planned), each step's status, and the partitions
# each asset materialised. The run's status itself comes from DagsterGraphQLClient.get_run_status.
RUN_DETAILS_QUERY = """
query KarteRunDetails($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      runId
      jobName
      tags { key value }
      startTime
      endTime
      assetSelection { path }
      executionPlan { assetKeys { path } }
      stepStats { stepKey status }
      assetMaterializations { assetKey { path } partition }
    }
    ... on Error { message }
  }
}
"""
