// The notices plugins (and the shell) raise with the SDK's notify(), in a corner of every page.
import { dismissNotice, useNotices } from "@plugdock/sdk";

import { Notice } from "@plugdock/react";

export function Toasts() {
  const notices = useNotices();
  return (
    <section className="toasts" aria-label="Notifications">
      {notices.map((notice) => (
        <Notice key={notice.id} notice={notice} onDismiss={() => dismissNotice(notice.id)} />
      ))}
    </section>
  );
}
