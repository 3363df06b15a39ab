package conformance

import "slices"

// coreCases is the suite's fixed, ordered list: cheap publish checks
// first, then redelivery, groups, bad input and lifecycle, with the
// broker restart last. Further cases come from register.
var coreCases = slices.Concat(publishCases, redeliveryCases, groupCases, inputCases, limitCases, networkCases, crashCases, lifecycleCases)
