/** Waiting with a deadline: the SDK's helper, which plugins use too. */
export {WaitTimeout, type WaitOptions, waitFor} from '@kube-spawn/sdk'
