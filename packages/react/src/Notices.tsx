// <PlugdockNotices />: the provider's own notices (a finished install, a plugin's notify()),
// for a host that gave PlugdockProvider no `notify` of its own.
import { Notice } from "./Notice";
import { usePlugdock } from "./provider";

export function PlugdockNotices() {
  const { notices, dismiss } = usePlugdock();
  return (
    <section className="plugdock plugdock-toasts" aria-label="Notifications">
      {notices.map((notice) => (
        <Notice key={notice.id} notice={notice} onDismiss={() => dismiss(notice.id)} />
      ))}
    </section>
  );
}
