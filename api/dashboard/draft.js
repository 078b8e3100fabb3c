// Hands a job's request from the job page ("Run again") to the submit form.
let draft = null;
export function setDraft(job) { draft = job; }
export function takeDraft() { const d = draft; draft = null; return d; }
